"""Whether inference reached its posterior: the checks behind the warnings ``bayes_hier.fit`` gives.

An SVI fit stopped while its loss was still falling, or NUTS chains that diverged or disagree, give
a posterior that can be far from the model's, and predictions from it look like any other. These
checks read the diagnostics of ``distgen_bayes.inference`` (no JAX needed) and say what to change.
Under ``distgen run`` the warnings also become notes of the run's evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: SVI: the largest change of the mean loss between the last two tenths of the steps, as a fraction of the
#: loss's range over the fit, for a trace that has flattened (converged fits measured here: 0.001 to 0.004;
#: 200 of the 3,000 steps a fit needed on 1,400 cells of Norman K562/A172 data: 0.032)
SVI_REL_CHANGE = 0.01
#: SVI: fewer steps than this leave no trace to judge (one step compared its loss with itself: "converged")
SVI_MIN_STEPS = 10
#: NUTS: the largest split R-hat of chains that agree (Vehtari et al. 2021 recommend 1.01; ArviZ's default)
R_HAT = 1.01


def convergence_problems(diagnostics: Mapping[str, Any], steps_knob: str = "steps") -> list[str]:
    """Messages for each sign that inference did not reach its posterior (empty when none)."""
    d = diagnostics
    out = []
    if d.get("method") == "svi" and d.get("steps", SVI_MIN_STEPS) < SVI_MIN_STEPS:
        out.append(f"bayes_hier: SVI ran {d['steps']} step(s), too few for its loss trace to show whether it converged (a trace "
                   f"of one step read as flat); the posterior is close to the guide's starting point: raise {steps_knob}")
    elif d.get("method") == "svi" and d.get("elbo_rel_change", 0.0) > SVI_REL_CHANGE:
        out.append(
            f"bayes_hier: SVI had not converged after {d['steps']} steps: the loss (negative ELBO) still changed by "
            f"{d['elbo_rel_change']:.1%} of its range over the last tenth of the steps (converged: below {SVI_REL_CHANGE:.0%}), "
            f"so the posterior, and every prediction from it, may be far from the model's; raise {steps_knob} "
            "(diagnostics['elbo_trace'] shows the loss)"
        )
    if d.get("method") == "nuts":
        if d.get("divergences", 0) > 0:
            out.append(f"bayes_hier: NUTS had {d['divergences']} divergent transition(s) after warmup: the draws may miss part of "
                       "the posterior; raise target_accept (e.g. 0.95) or num_warmup")
        if not d.get("r_hat_max", 1.0) <= R_HAT:  # NaN (constant draws of a site) is no proof of agreement
            out.append(f"bayes_hier: NUTS chains disagree (split R-hat up to {d['r_hat_max']:.3f}, above {R_HAT}; smallest effective "
                       f"sample size {d.get('ess_min', float('nan')):.0f}): raise num_warmup and num_samples")
    return out


__all__ = ["R_HAT", "SVI_MIN_STEPS", "SVI_REL_CHANGE", "convergence_problems"]
