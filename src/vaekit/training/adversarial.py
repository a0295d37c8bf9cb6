"""VAE-GAN: a patch discriminator that the decoder is trained against (TrainConfig.adversarial).

The likelihood alone rewards the mean of what an image could be, hence the VAE's blur. Here, after
`adversarial_start` plain steps, every step also

  - decodes the batch's reconstructions x_rec (the likelihood's means) and as many samples x_p
    from z ~ N(0, I), and scores them with a patch discriminator D (vaekit.core.nets);
  - adds to the VAE's loss (recon + beta KL, nats per example)
      feature_weight * sum_l |D_l(x) - D_l(x_rec)|^2 / L   the discriminator's features as a
                                                           learned similarity (Larsen et al. 2016),
                                                           summed per example, mean over layers
      lambda * g,  g = -mean D(x_rec, x_p)                 the adversarial (hinge) term, with the
                                                           adaptive weight of Esser et al. (2021):
      lambda = adversarial_weight * |grad_W rec| / (|grad_W g| + 1e-4), W the decoder's last layer,
    so the adversarial gradient stays a fixed fraction of the reconstruction gradient whatever
    the likelihood's scale;
  - trains D with the hinge loss mean(relu(1 - D(x))) + mean(relu(1 + D(x_rec, x_p))).

Both updates use the gradients of the same forward pass and are applied together, or (when any
loss or gradient of either is not finite) not at all: the loop's one non-finite guard covers both
optimizers. D's weights and Adam state are part of every checkpoint (TrainingState.parts), and its
latent draws come from the loop's generator, so a resumed run ends with the same weights as one
that was never interrupted. Validation still measures the VAE's objective, but an adversarial
decoder trades likelihood for sharpness by design, so once D is on every epoch's weights are
kept as the run's best (model.safetensors).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..config import TrainConfig
from ..core.nets import PatchDiscriminator
from ..errors import VaekitError
from .optim import apply_step, grad_norm, make_optimizer

if TYPE_CHECKING:  # for annotations only; the loop imports this module
    from .loop import Loop

PART = "discriminator"  # its name in the checkpoint
ADAPTIVE_EPS, ADAPTIVE_MAX = 1e-4, 1e4  # Esser et al.'s delta and clamp
D_BETAS = (0.5, 0.9)  # Adam's betas for the discriminator, as in Esser et al.


def decoder_last_layer(decoder: torch.nn.Module) -> torch.nn.Parameter:
    """The weight of the decoder's last layer (where the adaptive weight compares gradients)."""
    weights = [p for name, p in decoder.named_parameters() if name.endswith("weight")]
    if not weights:
        raise VaekitError("the decoder has no weight to balance the adversarial gradient at")
    return weights[-1]


def adaptive_weight(rec_grad: Tensor, adv_grad: Tensor) -> Tensor:
    """|rec_grad| / (|adv_grad| + eps), clamped to [0, 1e4], without gradient (Esser et al. 2021):
    the two terms' gradients at the decoder's last layer."""
    return (rec_grad.norm() / (adv_grad.norm() + ADAPTIVE_EPS)).clamp(0.0, ADAPTIVE_MAX).detach()


def feature_distance(real: list[Tensor], fake: list[Tensor]) -> Tensor:
    """Mean over layers of the per-example summed squared feature difference, averaged over the batch."""
    per_layer = [((f - r.detach()) ** 2).flatten(1).sum(1).mean() for r, f in zip(real, fake)]
    return torch.stack(per_layer).mean()


class AdversarialTraining:
    """The discriminator, its optimizer and the step that trains both it and the VAE (see above)."""

    def __init__(self, model, cfg: TrainConfig):
        self.model, self.cfg = model, cfg
        self.disc = PatchDiscriminator(model.data_shape).to(model.device)
        self.optimizer = make_optimizer(list(self.disc.parameters()), cfg.lr, betas=D_BETAS)
        self.last = decoder_last_layer(model.decoder)
        # per epoch, summed over adversarial steps on the device: D loss, g, lambda, feature distance, count
        self.sums = torch.zeros(5, device=model.device)

    # -- state -------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"model": self.disc.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, part: dict[str, Any] | None) -> None:
        if part is None:
            raise VaekitError("the checkpoint has no discriminator, so it was not trained with --adversarial")
        try:
            self.disc.load_state_dict(part["model"])
            self.optimizer.load_state_dict(part["optimizer"])
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            raise VaekitError(f"the checkpoint's discriminator does not fit: {str(e).splitlines()[0]}") from None

    def epoch_metrics(self) -> dict[str, float | None]:
        """Means over this epoch's adversarial steps (None before D started), then reset."""
        d, g, lam, feat, n = self.sums.tolist()
        self.sums.zero_()
        means = (None,) * 4 if n == 0 else (d / n, g / n, lam / n, feat / n)
        return dict(zip(("adv_d_loss", "adv_g_loss", "adv_weight", "adv_feature"), means))

    # -- one step ------------------------------------------------------------------------------------
    def step(self, loop: Loop, i: int, x, x_in, y, eps, step: int, batch: int, plain_step) -> None:
        """The epoch's batch i (the run's batch `batch`): the plain VAE step during the warm-up,
        afterwards the joint step."""
        if step < self.cfg.adversarial_start:
            plain_step(loop, i, x, x_in, y, eps, step, batch)
            return
        lr = loop.schedule.lr_at(batch)
        for opt in (loop.optimizer, self.optimizer):
            for group in opt.param_groups:
                group["lr"] = lr
        z_p = torch.randn(len(x), self.model.latent_dim, generator=loop.data_gen, device=x.device)
        with loop.precision.autocast():
            out = loop.forward_rest(x_in, y, target=x, eps=eps)
            loss = loop.objective.loss(
                out, step, loop.schedule.progress(batch)
            )  # the VAE's objective, nats per example
            fakes = torch.cat([out.px.mean, self.model.decode_mean(z_p, y)])  # (2B, C, H, W): reconstructions, samples
            d_loss, g, feat = self._losses(x, fakes)
        lam = self._vae_backward(loss, feat, g, fakes, loop.params)
        d_params = list(self.disc.parameters())
        self.optimizer.zero_grad(set_to_none=True)
        d_loss.backward(inputs=d_params)  # D's gradients only (none flow into the VAE)
        # one flag for both: finite only when every loss and gradient of either is
        norm = grad_norm(loop.params, self.cfg.grad_clip) + grad_norm(d_params, self.cfg.grad_clip)
        found_inf = loop.guard.check(loss + feat + g + d_loss, norm)
        apply_step(loop.optimizer, found_inf)
        apply_step(self.optimizer, found_inf)
        loop.guard.record(i, len(x), loss, out.recon, out.kl)
        terms = torch.stack([d_loss.detach(), g.detach(), lam, feat.detach(), torch.ones_like(lam)]).float()
        self.sums += torch.where(found_inf.bool(), 0.0, terms)  # a skipped step's NaNs stay out

    def _losses(self, x: Tensor, fakes: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One pass of D over the real batch and the fakes -> (D's hinge loss: real patches above
        +1, decoded ones below -1; g = -mean D(fakes); the feature distance of reconstructions
        to their originals)."""
        n = len(x)
        logits, features = self.disc(torch.cat([x, fakes]))  # (3B, 1, h, w); per stage (3B, c, h, w)
        real, fake = logits[:n], logits[n:]
        d_loss = torch.relu(1.0 - real).mean() + torch.relu(1.0 + fake).mean()
        feat = feature_distance([f[:n] for f in features], [f[n : 2 * n] for f in features])
        return d_loss, -fake.mean(), feat

    def _vae_backward(self, loss: Tensor, feat: Tensor, g: Tensor, fakes: Tensor, params) -> Tensor:
        """The VAE's gradients of rec + lambda g, rec = loss + feature_weight * feat (D's gradients
        untouched) -> lambda. The gradients of g and feat reach the fakes through D once each and
        serve both the adaptive weight and the update."""
        g_fakes, feat_fakes = (torch.autograd.grad(t, fakes, retain_graph=True)[0] for t in (g, feat))
        rec_fakes = self.cfg.feature_weight * feat_fakes  # (2B, C, H, W); 0 for the samples
        rec_last = torch.autograd.grad([loss, fakes], self.last, [torch.ones_like(loss), rec_fakes], retain_graph=True)[
            0
        ]
        adv_last = torch.autograd.grad(fakes, self.last, g_fakes, retain_graph=True)[0]
        lam = self.cfg.adversarial_weight * adaptive_weight(rec_last, adv_last)
        for p in params:
            p.grad = None
        torch.autograd.backward(
            [loss, fakes], [torch.ones_like(loss), rec_fakes + lam * g_fakes], inputs=params, retain_graph=True
        )
        return lam
