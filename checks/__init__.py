"""Built-in check families, one module each, registered in the ``auditor.checks`` entry-point group."""
