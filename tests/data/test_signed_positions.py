"""``expression.signed_positions``: uint64 sparse positions read as int64 without a copy of the stored array."""

import numpy as np
import scipy.sparse as sp

from distgen.data.expression import signed_positions


def _uint64_csr(big: bool = False) -> sp.csr_matrix:
    x = sp.csr_matrix(np.array([[0, 1.0, 0, 2.0], [3.0, 0, 0, 0], [0, 0, 0, 0], [0, 4.0, 5.0, 0]], dtype=np.float32))
    x.indptr = x.indptr.astype(np.uint64)
    x.indices = x.indices.astype(np.uint64)
    if big:
        x.indices[0] = np.uint64(2**63)  # past int64: left as stored, for check_sparse_format to name
    return x


def test_uint64_positions_become_int64_views_of_the_same_values():
    x = _uint64_csr()
    stored = {name: getattr(x, name) for name in ("indices", "indptr")}
    dense = np.array([[0, 1, 0, 2], [3, 0, 0, 0], [0, 0, 0, 0], [0, 4, 5, 0]], dtype=np.float32)
    signed_positions(x)
    for name, before in stored.items():
        after = getattr(x, name)
        assert after.dtype == np.int64
        np.testing.assert_array_equal(after, before.astype(np.int64))
        assert np.shares_memory(after, before)  # re-typed in place: no 8-byte copy per stored value
    np.testing.assert_array_equal(x.toarray(), dense)  # scipy densifies the re-typed matrix (uint64: "unsupported data types")
    x.sort_indices()
    np.testing.assert_array_equal(x.toarray(), dense)


def test_uint64_positions_past_int64_are_left_as_stored():
    x = _uint64_csr(big=True)
    signed_positions(x)
    assert x.indices.dtype == np.uint64 and x.indptr.dtype == np.int64
