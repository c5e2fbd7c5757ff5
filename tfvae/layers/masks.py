"""MADE's masks: the degrees of inputs and hidden units, and the dense masks they give.

Each input `x_j` gets a degree `d_j`, a permutation of 1..n (`input_order`),
each hidden unit a degree `m` in [1, n - 1] (`hidden_degrees`). A weight from a unit of degree `a` to a hidden
unit of degree `b` is kept iff `a <= b`, to an output of input `i` iff
`a < d_i`. Every path from `x_j` to `output[..., i, :]` then climbs through
degrees `d_j <= m_1 <= ... < d_i`, so

    output[..., i, :] depends on x[..., j] only if d_j < d_i,

and `p(x) = prod_i p(x_i | x_j : d_j < d_i)` is a valid factorization. For
'left-to-right', `d = (1, ..., n)`: output i sees `x_0 .. x_{i-1}`.

The masks are NumPy constants made at build time and multiplied into the
kernels in `call` (the kernels also start at zero where masked, as in TFP), so
the property holds for any weights, including weights copied in or loaded, and
the network is a few static matmuls that XLA compiles.

[1] Germain, Gregor, Murray, Larochelle. MADE: Masked Autoencoder for
    Distribution Estimation. ICML 2015. https://arxiv.org/abs/1502.03509
"""

import numpy as np


def _left_to_right(event_size, rng):
    return np.arange(1, event_size + 1)


def _right_to_left(event_size, rng):
    return np.arange(event_size, 0, -1)


def _random_order(event_size, rng):
    return rng.permutation(np.arange(1, event_size + 1))


INPUT_ORDERS = {"left-to-right": _left_to_right, "right-to-left": _right_to_left, "random": _random_order}


def _equal_degrees(units, lowest, event_size, rng):
    # Cut [1, n - 1] into `units + 1` equal pieces; the cuts are the degrees.
    return np.maximum(lowest, np.ceil(np.arange(1, units + 1) * (event_size - 1) / (units + 1)).astype(np.int64))


def _random_degrees(units, lowest, event_size, rng):
    return rng.integers(lowest, event_size, size=units)  # in [lowest, n - 1]


HIDDEN_DEGREES = {"equal": _equal_degrees, "random": _random_degrees}

def input_degrees(event_size, input_order="left-to-right", seed=None):
    """The degrees `d: [event_size]` of the inputs, a permutation of 1..event_size.

    `input_order` is 'left-to-right', 'right-to-left', 'random' (drawn from
    `seed`) or the degrees themselves (1-based, as in TFP).
    """
    if isinstance(input_order, str):
        if input_order not in INPUT_ORDERS:
            raise ValueError(
                f"`input_order` must be one of {sorted(INPUT_ORDERS)} or a permutation of "
                f"1..event_size; received {input_order!r}."
            )
        return INPUT_ORDERS[input_order](event_size, np.random.default_rng(seed))
    order = np.asarray(input_order)
    if order.ndim != 1 or not np.array_equal(np.sort(order), np.arange(1, event_size + 1)):
        raise ValueError(
            f"`input_order` given explicitly must be a permutation of 1..{event_size} "
            f"(event_size={event_size}, 1-based degrees as in TFP); received {input_order!r}."
        )
    return order.astype(np.int64)


def make_dense_autoregressive_masks(
    params, event_size, hidden_units, input_order="left-to-right", hidden_degrees="equal", seed=None
):
    """Masks that make a stack of dense layers autoregressive (MADE), as NumPy bool arrays.

    Returns one mask per dense layer, `[event_size, hidden_units[0]]`, ...,
    `[hidden_units[-1], event_size * params]`; output column `i * params + p`
    is parameter `p` of input `i` (reshape the output to
    `[..., event_size, params]`). A unit of degree `a` feeds a hidden unit of
    degree `b` iff `a <= b`, and the outputs of input `i` iff `a < d_i`.
    `seed` fixes 'random' input orders and hidden degrees (input order first,
    then each hidden layer's degrees, from one `np.random.default_rng(seed)`).

    Example:

        from tfvae.layers.masks import make_dense_autoregressive_masks
        masks = make_dense_autoregressive_masks(params=2, event_size=3, hidden_units=[4])
        [m.shape for m in masks]  # [(3, 4), (4, 6)]
    """
    rng = np.random.default_rng(seed)
    degrees = [input_degrees(event_size, input_order, seed=rng)]
    if hidden_degrees not in HIDDEN_DEGREES:
        raise ValueError(f"`hidden_degrees` must be one of {sorted(HIDDEN_DEGREES)}; received {hidden_degrees!r}.")
    for units in hidden_units:
        lowest = min(int(np.min(degrees[-1])), event_size - 1)
        degrees.append(HIDDEN_DEGREES[hidden_degrees](units, lowest, event_size, rng))
    masks = [inputs[:, np.newaxis] <= outputs for inputs, outputs in zip(degrees[:-1], degrees[1:])]
    output_mask = degrees[-1][:, np.newaxis] < degrees[0]  # [units, event_size]
    masks.append(np.repeat(output_mask, params, axis=1))  # column i * params + p
    return masks
