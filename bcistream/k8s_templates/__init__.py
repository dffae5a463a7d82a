"""Package data: the launcher's Job templates, rendered from k8s/overlays by k8s/tools/render_templates.py."""
