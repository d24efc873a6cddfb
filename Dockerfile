# equisweep on the GPU nodes of a Ray cluster (KubeRay pods, or `docker:` in the launcher).
#
#   docker build -t equisweep:0.1.0 .          # tag = equisweep:<package version>
#   docker push <registry>/equisweep:0.1.0     # then point clusters/kuberay-*.yaml at it
#
# The base image's Ray must match the Ray of every client that submits to the cluster
# (`pip show ray`): both 2.60.0 here. Install steps mirror the README/CI
# (`pip install torch==X -e .`), with torch's CUDA build instead of the CPU one.
FROM rayproject/ray:2.60.0-py311-gpu

# CUDA flavour of the torch wheel; must not be newer than the node driver supports.
ARG TORCH_VERSION=2.13.0
ARG TORCH_CUDA=cu130

LABEL org.opencontainers.image.title="equisweep" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.description="Scaling-law sweeps of GATr vs a transformer on Ray" \
      org.opencontainers.image.licenses="Apache-2.0"

WORKDIR /home/ray/equisweep

# torch first, in its own layer: it is large and changes less often than the code.
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" \
        --index-url "https://download.pytorch.org/whl/${TORCH_CUDA}"

COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users equisweep ./equisweep
COPY --chown=ray:users sweeps ./sweeps
COPY --chown=ray:users clusters ./clusters
# torch is already satisfied, so this resolves only equisweep and its other dependencies.
RUN pip install --no-cache-dir -e .

# Shared locations the cluster manifests mount; override per deployment.
ENV EQUISWEEP_DATA=/home/ray/.cache/equisweep/data \
    PYTHONUNBUFFERED=1

# Fail the build, not the first trial, if the install is broken (no GPU needed for this).
RUN equisweep --version && python -c "import equisweep.spec, equisweep.models, equisweep.task"
