"""Arrays in and out, with numpy when it is importable and lists without.

Outputs are numpy.ndarray (float32 or int32, the right shape) when numpy is
there, else (nested) lists.  Inputs may be either, or any sequence.
"""

import ctypes

from ._ffi import check_int

try:
    import numpy as _np
except ImportError:  # numpy is optional
    _np = None


def _refuse_text(values, what):
    """Text is not numbers: numpy would read a bytearray as uint8 ids and a
    bytes object not at all, and a list() of either as ids again."""
    if isinstance(values, (str, bytes, bytearray, memoryview)):
        raise TypeError("%s: expected numbers, got %s" % (what, type(values).__name__))


def _flatten(values, shape, what):
    """A flat list from a (nested) sequence, checked against shape."""
    if len(shape) == 2:
        rows = list(values)
        if len(rows) != shape[0]:
            raise ValueError("%s: expected %d rows, got %d" % (what, shape[0], len(rows)))
        flat = []
        for i, row in enumerate(rows):
            _refuse_text(row, "%s row %d" % (what, i))
            row = list(row)
            if len(row) != shape[1]:
                raise ValueError("%s: row %d has %d values, expected %d"
                                 % (what, i, len(row), shape[1]))
            flat.extend(row)
        return flat
    flat = list(values)
    if len(flat) != shape[0]:
        raise ValueError("%s: expected %d values, got %d" % (what, shape[0], len(flat)))
    return flat


def input_buffer(values, ctype, shape, what):
    """(pointer, keep-alive) for values of the given shape, copied or viewed
    as contiguous ctype.  shape may contain None for 'any' (a 2-D input's
    row count, say); the actual shape is returned third."""
    np_dtype = {ctypes.c_float: "float32", ctypes.c_int32: "int32"}[ctype]
    _refuse_text(values, what)
    if hasattr(values, "__next__"):
        values = list(values)  # an iterator: read it once
    if _np is not None and not isinstance(values, (list, tuple)):
        arr = _np.asarray(values)
        if arr.ndim == 0:  # ascontiguousarray would make it one element
            raise TypeError("%s: expected an array of shape %s, got a scalar"
                            % (what, _fmt_shape(shape)))
        kinds = "iub" if ctype is ctypes.c_int32 else "fiub"
        if arr.size and arr.dtype.kind not in kinds:
            raise TypeError("%s: expected %s, got %s"
                            % (what, "integers" if kinds == "iub" else "numbers", arr.dtype))
        if ctype is ctypes.c_int32 and arr.size and arr.dtype.kind in "iu":
            _check_int32(int(arr.min()), int(arr.max()), what)
        arr = _np.ascontiguousarray(arr, dtype=np_dtype)
        if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
            raise ValueError("%s: expected shape %s, got %s"
                             % (what, _fmt_shape(shape), tuple(arr.shape)))
        return arr.ctypes.data_as(ctypes.POINTER(ctype)), arr, tuple(arr.shape)
    shape = _infer_shape(values, shape)
    flat = _flatten(values, shape, what)
    if ctype is ctypes.c_int32 and flat:
        # ctypes keeps the low 32 bits of a larger int, and truncates a float
        for v in flat:
            if not isinstance(v, int) and not hasattr(v, "__index__"):
                raise TypeError("%s: expected integers, got %s" % (what, type(v).__name__))
        _check_int32(min(flat), max(flat), what)
    buf = (ctype * max(len(flat), 1))(*flat)
    return ctypes.cast(buf, ctypes.POINTER(ctype)), buf, shape


def _check_int32(lo, hi, what):
    """The smallest and the largest of some ids, against int32 (check_int's
    RangeError: ctypes and numpy's cast would keep their low bits)."""
    check_int(lo, ctypes.c_int32, what)
    check_int(hi, ctypes.c_int32, what)


def _infer_shape(values, shape):
    if None not in shape:
        return tuple(shape)
    if len(shape) == 1:
        return (len(values),)
    rows = list(values)
    cols = shape[1] if shape[1] is not None else (len(rows[0]) if rows else 0)
    return (shape[0] if shape[0] is not None else len(rows), cols)


def _fmt_shape(shape):
    return "(" + ", ".join("any" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def output_buffer(ctype, shape):
    """(pointer, result) where result becomes the output through finish()."""
    n = 1
    for s in shape:
        n *= s
    if _np is not None:
        arr = _np.empty(shape, dtype={ctypes.c_float: "float32", ctypes.c_int32: "int32"}[ctype])
        return arr.ctypes.data_as(ctypes.POINTER(ctype)), arr
    buf = (ctype * max(n, 1))()
    return ctypes.cast(buf, ctypes.POINTER(ctype)), (buf, tuple(shape))


def finish(result):
    """The output of output_buffer(): the ndarray, or a (nested) list."""
    if _np is not None and isinstance(result, _np.ndarray):
        return result
    buf, shape = result
    n = 1
    for s in shape:
        n *= s
    flat = buf[:n]
    if len(shape) == 2:
        return [flat[i * shape[1]:(i + 1) * shape[1]] for i in range(shape[0])]
    return flat
