"""Prospects (leads): created by an operator from a chat, an offline request or by hand, or
automatically from pre-chat and offline data where profiling has a basis (``basis.may_profile``)
and the person has not objected (``profiling_objections``)."""
