"""One module per publisher (module name = source name = mirror folder name), each satisfying
`radar_pipeline.sources.toolkit.Adapter`; `registry.adapter(source)` finds them by name, so a new
publisher needs no registry edit. docs/adding-a-source.md walks through adding one."""
