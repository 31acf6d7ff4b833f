# GGUF generators load slowly (de-quantized tensor by tensor): convert each once into an
# HF folder that every later job loads in a fraction of a second.


rule convert_generator:
    output:
        directory(LAYOUT.converted_generator("{generator}")),
    log:
        log_path("convert_generator", "{generator}"),
    benchmark:
        bench_path("convert_generator", "{generator}")
    conda:
        CONDA_ENV
    threads: job_threads("convert_generator")
    resources:
        gpu=gpus("convert_generator"),
    params:
        spec=lambda wc: config["generators"][wc.generator],
    script:
        "../workflow/scripts/convert_generator.py"
