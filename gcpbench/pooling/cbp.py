"""``cbp``: compact bilinear pooling by Tensor Sketch (Gao, Beijbom, Zhang, Darrell, CVPR 2016),
as fast-MPN-COV's ``CBP`` (jiangtaoxie/fast-MPN-COV ``src/representation/CBP.py``).

Definition: two count sketches of each position's feature x_m (C values): hash h_k(i) in
[0, d) and sign s_k(i) in {-1, +1} per channel, C_k x = sum_i s_k(i) x_i e_(h_k(i)); their
circular convolution (the product of their FFTs, inverse FFT) summed over the M positions,
then sign(v) sqrt(|v| + 1e-8) and L2 normalisation; d = ``proj_dim`` (8192 by default). The
hashes are drawn from a ``torch.Generator`` seeded with ``seed`` (1, as the authors'
``torch.manual_seed(1)``, in their order h_1, h_2, s_1, s_2; no global RNG is touched) and kept
as buffers, so a checkpoint carries them.

Computation (batched, no per-image loop): the convolution is bilinear, so
sum_m (C_1 x_m) * (C_2 x_m) [k] = sum over (i, j) with (h_1(i) + h_2(j)) mod d = k of
s_1(i) s_2(j) G_ij, with G = sum_m x_m x_m^T = X X^T the uncentred Gram matrix: one batched
matrix product and one ``index_add_`` of C^2 values into d bins per sample, equal (to float
rounding) to the FFT route; O(B C^2 M) time like every covariance method here and O(B C^2)
memory, where the FFT route needs O(B M d). On CUDA ``index_add_`` sums with atomics, so the
last bits may vary between runs; the hashes never do.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from gcpbench.errors import GcpbenchError
from gcpbench.pooling.bcnn import signed_sqrt_l2
from gcpbench.pooling.common import as_features, autocast_off


def draw_hashes(dim: int, proj_dim: int, seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """h_1, h_2 (long, in [0, proj_dim)) and s_1, s_2 (+-1 floats) for ``dim`` channels."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    h1 = torch.randint(0, proj_dim, (dim,), generator=generator, device="cpu")
    h2 = torch.randint(0, proj_dim, (dim,), generator=generator, device="cpu")
    s1 = (2 * torch.randint(0, 2, (dim,), generator=generator, device="cpu") - 1).float()
    s2 = (2 * torch.randint(0, 2, (dim,), generator=generator, device="cpu") - 1).float()
    return h1, h2, s1, s2


def tensor_sketch(gram: Tensor, h1: Tensor, h2: Tensor, s1: Tensor, s2: Tensor, proj_dim: int) -> Tensor:
    """The summed circular convolution of the two count sketches, from the Gram matrix (B, C, C)."""
    batch = gram.shape[0]
    bins = (h1.unsqueeze(1) + h2.unsqueeze(0)).remainder_(proj_dim).reshape(-1)
    signs = (s1.unsqueeze(1) * s2.unsqueeze(0)).reshape(1, -1).to(gram.dtype)
    out = gram.new_zeros(batch, proj_dim)
    return out.index_add(1, bins, gram.reshape(batch, -1) * signs)


class CompactBilinearPool(nn.Module):
    """Compact bilinear pooling (Tensor Sketch) to ``proj_dim`` values; hashes are buffers."""

    def __init__(self, dim: int, proj_dim: int = 8192, seed: int = 1) -> None:
        super().__init__()
        if proj_dim < 1:
            raise GcpbenchError(f"the CBP projection size must be positive, got {proj_dim}")
        self.dim, self.proj_dim, self.seed = dim, int(proj_dim), int(seed)
        self.output_dim = self.proj_dim
        device = torch.empty(0).device  # the default device (meta inside `with torch.device("meta")`)
        for name, value in zip(("hash1", "hash2", "sign1", "sign2"), draw_hashes(dim, self.proj_dim, self.seed)):
            self.register_buffer(name, value.to(device))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 4 and x.shape[1] != self.dim:
            raise GcpbenchError(f"cbp pooling was built for {self.dim} channels, got {x.shape[1]}")
        feats = as_features(x, "cbp")
        with autocast_off(x.device):
            gram = torch.bmm(feats, feats.mT)
            sketch = tensor_sketch(gram, self.hash1, self.hash2, self.sign1, self.sign2, self.proj_dim)
            return signed_sqrt_l2(sketch)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, proj_dim={self.proj_dim}, seed={self.seed}"
