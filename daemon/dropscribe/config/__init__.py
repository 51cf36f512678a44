"""The service config and the per-folder rule files, from parsed text to typed settings and rules.

``model`` holds the typed settings; ``schema`` the one table of keys, whose kinds (what a value may be)
are in ``kinds`` and ``context``; ``yamlsrc`` parses YAML keeping line numbers; ``validate`` turns a
document into settings, collecting every problem; ``rulefiles`` turns an asr-rules.yaml's bytes into
rules. Nothing here opens a file: ``dropscribe.service.settings_files`` reads them and hands the bytes
over (the one look at the disk left is ``validate``'s overlap check, which follows folder links).
"""
