"""tornrouter: an LLM gateway on Tornado.

Clients speak the OpenAI or the Anthropic API; every request runs one
configurable pipeline and goes to an upstream of either kind.  The public
extension points are ``tornrouter.plugins.BasePlugin`` and
``tornrouter.classifiers.BaseClassifier``; ``tornrouter --help`` runs it.

Importing the package does no work: the parts are imported where they are used.
"""

__version__ = "0.4.0"
