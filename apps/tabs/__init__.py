"""The app's tabs, in page order. A new tab is a module here with a `Tab` subclass (see apps/tab.py), and its
class added to TABS."""

from . import circuits, features, unlearning

TABS = [features.FeaturesTab, circuits.CircuitsTab, unlearning.UnlearningTab]
