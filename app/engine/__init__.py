"""The model directory: packages on disk, resolved per request, listed at ``/v1/models``."""
