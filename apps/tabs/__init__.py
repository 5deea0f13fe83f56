"""The app's tabs, in page order. A new tab is a module here with a `Tab` subclass (see apps/tab.py), and its
class added to TABS."""

from . import circuits, diffusion, features, unlearning

TABS = [features.FeaturesTab, circuits.CircuitsTab, unlearning.UnlearningTab, diffusion.DiffusionTab]
