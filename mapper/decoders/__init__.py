"""Frozen audio decoders the mapper's tokens condition; one sub-package per decoder (AudioLDM-2).
A shared decoder interface comes with the second decoder."""
