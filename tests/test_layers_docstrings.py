"""Every public Keras layer of tfvae.layers has a docstring example, and it runs.

The convention parsed here (strict: a class without one, or with one that does
not parse or compile, fails). In the class docstring, cleaned by
`inspect.getdoc`, exactly one line contains "Example" and ends with ":" (e.g.
"Example:", "Example (a decoder for binary images):", or a sentence ending in
"... Example:"). The example is the indented block that follows it: after any
blank lines, the consecutive lines indented deeper than that line (blank lines
inside included), up to the first non-blank line that is not. The block is
dedented; a Markdown fence (a first line starting with ``` and a last line
```) is stripped.

The code runs with `np`, `keras`, `tf`, `tfp`, `tfd` (`tfp.distributions`),
`tfvae` and every name of `tfvae.layers.__all__` in scope, after
`keras.utils.set_random_seed(1234)` (so `np.random` is seeded too). Examples
state their checkable claims as `assert` statements.
"""

import inspect
import linecache
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfvae
import tfvae.layers

LAYERS = [
    "DistributionLambda",
    "IndependentNormal",
    "IndependentBernoulli",
    "IndependentLogistic",
    "IndependentPoisson",
    "IndependentGaussian",
    "MultivariateNormalTriL",
    "OneHotCategorical",
    "CategoricalMixtureOfOneHotCategorical",
    "MixtureSameFamily",
    "MixtureNormal",
    "MixtureLogistic",
    "KLDivergenceRegularizer",
    "KLDivergenceAddLoss",
    "VariableLayer",
    "DenseVariational",
    "DenseReparameterization",
    "DenseFlipout",
    "DenseLocalReparameterization",
    "Convolution1DReparameterization",
    "Convolution2DReparameterization",
    "Convolution3DReparameterization",
    "Convolution1DFlipout",
    "Convolution2DFlipout",
    "Convolution3DFlipout",
    "AutoregressiveNetwork",
    "AutoregressiveTransform",
    "IndependentContinuousBernoulli",
    "DiscretizedLogisticMixture",
    "InverseAutoregressiveFlowNormal",
    "IndependentNormalWeights",
]


def _indent(line):
    return len(line) - len(line.lstrip())


def example_code(cls):
    """The example block of `cls`'s docstring, dedented and unfenced (module docstring); AssertionError if none."""
    doc = inspect.getdoc(cls) or ""
    lines = doc.splitlines()
    markers = [i for i, line in enumerate(lines) if "Example" in line and line.rstrip().endswith(":")]
    assert len(markers) == 1, (
        f"{cls.__name__}: expected one line containing 'Example' and ending in ':'; found {len(markers)}")
    start = markers[0]
    marker_indent = _indent(lines[start])
    block = []
    for line in lines[start + 1:]:
        if line.strip() and _indent(line) <= marker_indent:
            break
        block.append(line)
    code = textwrap.dedent("\n".join(block)).strip("\n")
    assert code, f"{cls.__name__}: no indented block after {lines[start].strip()!r}"
    code_lines = code.splitlines()
    if code_lines[0].startswith("```"):
        assert len(code_lines) > 2 and code_lines[-1].strip() == "```", f"{cls.__name__}: unclosed ``` fence"
        code = textwrap.dedent("\n".join(code_lines[1:-1]))
    return code


def test_every_public_layer_is_covered():
    public_layers = {
        name for name in tfvae.layers.__all__
        if inspect.isclass(getattr(tfvae.layers, name))
        and issubclass(getattr(tfvae.layers, name), (keras.layers.Layer, keras.regularizers.Regularizer))
        and name != "DistributionLayer"  # the abstract base: no example of its own
    }
    assert public_layers == set(LAYERS)


def test_the_parser_is_strict():
    class NoExample:
        """Nothing to run."""

    class EmptyExample:
        """Example:

        Not indented deeper, so not an example.
        """

    class Fenced:
        """Summary.

        Example (fenced):
          ```python
          value = 1 + 1
          ```
        """

    for cls in (NoExample, EmptyExample):
        with pytest.raises(AssertionError):
            example_code(cls)
    assert example_code(Fenced) == "value = 1 + 1"


@pytest.mark.parametrize("name", LAYERS)
def test_docstring_example_runs(name):
    source, filename = example_code(getattr(tfvae.layers, name)), f"<{name} docstring example>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # tracebacks show the lines
    code = compile(source, filename, "exec")
    namespace = {public: getattr(tfvae.layers, public) for public in tfvae.layers.__all__}
    namespace.update(np=np, keras=keras, tf=tf, tfp=tfp, tfd=tfp.distributions, tfvae=tfvae, __name__="__docstring__")
    keras.utils.set_random_seed(1234)
    exec(code, namespace)
