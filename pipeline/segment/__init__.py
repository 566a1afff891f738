"""Customer segments: from the profile and from behaviour seen in the stream."""
