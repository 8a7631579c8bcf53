"""meta-experiment: an MCP server that runs A/B experiments on changes to files in a project."""

__version__ = "0.1.0"
