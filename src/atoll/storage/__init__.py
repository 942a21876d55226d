"""Storage: blobs, project files and logs, in a local directory by default."""
