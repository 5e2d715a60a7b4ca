"""site_agent."""
