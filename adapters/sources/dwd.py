"""DWD (being written)."""
class DwdSource:
    def __init__(self, settings, loaded, **_):
        self.name = settings.name
    async def run(self, ctx):
        raise NotImplementedError
