"""The Gradio workbench app (issue 5/6). Nothing is implemented here yet."""
