from setuptools import find_packages, setup


def requirements() -> list[str]:
    with open("requirements.txt", encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip() and not line.startswith("#")]


setup(
    name="tornrouter",
    version="0.1.0",
    description="An LLM gateway on Tornado: OpenAI and Anthropic clients, any provider, one pipeline.",
    python_requires=">=3.10",
    packages=find_packages(include=["tornrouter", "tornrouter.*"]),
    install_requires=requirements(),
    entry_points={"console_scripts": ["tornrouter=tornrouter.cli:main"]},
)
