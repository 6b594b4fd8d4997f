"""Built-in check families, one package each (its check, collection, analysis and findings.yaml), registered
in the ``auditor.checks`` entry-point group; ``checks/web`` is what the web families share."""
