"""The baselines HRR must beat, one module each; each is one entry of the method registry
(``hrr_core/methods/<name>.py``), which builds them (``hrr_core.methods.build``).

Two kinds (``MethodSpec.trains``):
- loop: ``nn.Module`` with ``forward(inputs) -> DetectorOutput`` (logits (B,), larger =
  generated), trained by the project's generic loop with ``bce_objective``. Inputs are images
  (B, 3, H, W) in [0, 1], H, W >= 32, except DIRE whose inputs are cached residuals
  ``dire_representation(x, ldm, num_steps)`` of the same shape.
- fit: ``fit(images_or_features, labels) -> self``, ``score(images) -> np.ndarray`` of
  probabilities, ``save(dir)`` / ``load(dir)`` (JSON + safetensors, no pickle).

Their configs are in :mod:`hrr_core.schema.baselines`. See docs/baselines.md.
"""
