"""The package: ``pip install .`` (or ``python -m build``) installs the
``tornrouter`` command, with the dashboard page and the example configs as
package data.  ``tornrouter/static`` and ``tornrouter/conf`` are links to the
repository's ``static/`` and ``conf/``, so each file has one source; the sdist
and the wheel hold copies of them."""

import re

from setuptools import find_packages, setup


def read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def requirements() -> list[str]:
    return [line.strip() for line in read("requirements.txt").splitlines() if line.strip() and not line.startswith("#")]


setup(
    name="tornrouter",
    version=re.search(r'^__version__ = "([^"]+)"', read("tornrouter/__init__.py"), re.M).group(1),
    description="An LLM gateway on Tornado: OpenAI and Anthropic clients, any provider, one pipeline.",
    long_description=read("README.md"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tornrouter", "tornrouter.*"]),
    package_data={"tornrouter": ["static/*", "static/vendor/*/*", "conf/dev.yaml", "conf/prod.yaml"]},
    install_requires=requirements(),
    # Provider kinds whose SDK pieces are not everyone's: pip install 'tornrouter[vertex]'.
    extras_require={"vertex": ["google-auth[requests]>=2.20,<3"], "bedrock": ["botocore>=1.34,<2"]},
    entry_points={"console_scripts": ["tornrouter=tornrouter.cli:main"]},
)
