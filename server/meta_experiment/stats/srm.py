"""Sample-ratio mismatch: are the arms' counts consistent with the intended split?"""

from __future__ import annotations

from scipy import special

from .numeric import clip_p
from .results import SrmCheck

SRM_ALPHA = 0.001  # the usual SRM alarm level (Fabijan et al. 2019, KDD, "Diagnosing Sample Ratio Mismatch")


def srm_check(counts: str, control: int, treatment: int, control_share: float = 0.5) -> SrmCheck:
    """Pearson chi-square of (control, treatment) against the split, 1 df (scipy.stats.chisquare)."""
    total = control + treatment
    base = dict(
        counts=counts,
        control=control,
        treatment=treatment,
        expected_control_share=control_share,
        alpha=SRM_ALPHA,
    )
    if total == 0:
        return SrmCheck(chi2=None, p_value=None, mismatch=False, **base)  # type: ignore[arg-type]
    e_c, e_t = total * control_share, total * (1 - control_share)
    chi2 = (control - e_c) ** 2 / e_c + (treatment - e_t) ** 2 / e_t
    p = clip_p(float(special.chdtrc(1, chi2)))  # scipy.stats.chi2.sf(chi2, 1)
    return SrmCheck(chi2=chi2, p_value=p, mismatch=p < SRM_ALPHA, **base)  # type: ignore[arg-type]
