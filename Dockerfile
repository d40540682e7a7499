# Image for the relayer node and the Faust worker (production shape; see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY engine engine
COPY proofs proofs
COPY streams streams
COPY relayer relayer
RUN pip install --no-cache-dir .
ENTRYPOINT ["xmargin"]
