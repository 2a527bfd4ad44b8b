"""my-distgen-kernel: the Laplacian kernel as a distgen plugin (entry point ``distgen.kernels: laplacian``)."""

from my_distgen_kernel.laplacian import LaplacianKernel

__all__ = ["LaplacianKernel"]
