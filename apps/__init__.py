"""The Gradio workbench app: feature browser and circuit/edge inspector over a runs directory (`interp app`)."""
