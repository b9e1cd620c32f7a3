"""tagger's sub-commands that live in modules of their own (registered in ``tagger.cli.LazyGroup.lazy``)."""
