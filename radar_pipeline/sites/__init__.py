"""Sites: intake of buyer site files (SITE_INPUT.md) and site scoring (METHODOLOGY §6–§9)."""
