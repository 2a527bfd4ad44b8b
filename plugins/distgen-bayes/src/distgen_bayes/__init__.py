"""distgen-bayes: a Bayesian hierarchical model of population responses for distgen (numpyro/JAX).

The model registers as ``bayes_hier`` in the ``distgen.models`` entry-point group. Importing this
package does not import JAX; fitting does.
"""

__version__ = "0.1.0"
