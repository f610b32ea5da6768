"""The LLM gateway: TGI's API in front of TGI backends, with auth, limits, cache, routing."""
