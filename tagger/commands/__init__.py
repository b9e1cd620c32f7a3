"""The ``tagger`` commands, one module each; :mod:`tagger.cli` lists them (``LazyGroup.lazy``)
and :mod:`tagger.commands.common` is the plumbing they share."""
