"""Publishing results: leaderboards, statistics, figures and the report page, all read from run directories."""
