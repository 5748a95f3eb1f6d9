"""ISIC Rev.4 sector reference data and the sector weight rule table."""
