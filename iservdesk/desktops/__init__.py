"""Desktops: the catalog of desktop types and the Spawner that runs them.

docker.py is the only module that imports the docker SDK; everything else talks to the
engine through it and sees only iservdesk's own errors.
"""
