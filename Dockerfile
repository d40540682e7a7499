# Image for the relayer node and the Faust worker (production shape; see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY engine engine
COPY proofs proofs
COPY wire wire
COPY bus bus
COPY streams streams
COPY relayer relayer
COPY devnet devnet
COPY xmargin xmargin
RUN pip install --no-cache-dir .
ENTRYPOINT ["xmargin"]
