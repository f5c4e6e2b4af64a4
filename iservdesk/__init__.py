"""iservdesk: personal Kasm desktops for schools, signed in with IServ."""

__version__ = "0.1.0"
