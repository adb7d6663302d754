"""The only package that imports boto3: sessions, resolution, publishing, pruning, gc, verify."""
