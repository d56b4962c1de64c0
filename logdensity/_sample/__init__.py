"""The shared sampling loop, as parts that follow the data flow: settings
(`_settings`), the kernel (`_kernel`), the adaptation (`_adaptation`), the chain map
(`_chains`), the sampler state (`_state`), the compiled programs (`_programs`), the
starts (`_starts`), the host side (`_host`), and `sample` composing them (`_sample`)."""

from ._sample import SamplingWarning as SamplingWarning, resume as resume, sample as sample
from ._state import SamplerState as SamplerState
from ._warnings import DrawsSavedError as DrawsSavedError

__all__ = ["DrawsSavedError", "SamplerState", "SamplingWarning", "resume", "sample"]
