"""``python -m unet_studio.cli ...`` is ``unet-studio ...``: how ``torchrun -m unet_studio.cli train ...`` starts it."""

import sys

from . import main

sys.exit(main())
