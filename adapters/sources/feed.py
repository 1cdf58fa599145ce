"""CAP Atom/RSS feeds (being written)."""
class CapFeedSource:
    def __init__(self, settings, loaded, **_):
        self.name = settings.name
    async def run(self, ctx):
        raise NotImplementedError
