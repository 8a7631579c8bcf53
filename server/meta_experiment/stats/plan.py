"""The sequential test's plan constants, in a module that imports nothing heavy, so that text in
`policy.py` and the server's start-up path can name them without loading scipy (see
`sequential.py` for what they mean and the bench that measures them)."""

PLAN_MULTIPLE = 7  # the planned window ends at 7x sample_size_required trials
WINDOW_SHARE = 0.8  # share of each direction's alpha spent inside the planned window
MIXTURE_R0 = 3.0  # tau^2 * n_eff of the e-process at sample_size_required
MIN_PER_ARM = 5  # no automatic decision before each arm has this many values of the primary metric
