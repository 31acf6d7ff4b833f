# Ft. Embed and Ft. Gen: one job per (dataset, model, learning rate) of the grid.


rule train_embedder:
    input:
        questions=LAYOUT.qa_split("{dataset}", "train"),
        store=lambda wc: store_manifest(wc.embedder),
        # Where training.embedder.hard_negatives come from: the base embedder's top-k. Without
        # hard negatives no input, so that retrieval settings (k) re-train nothing here.
        retrieved=lambda wc: (
            base_retrieval(wc.dataset, wc.embedder, "train")
            if config["training"]["embedder"]["hard_negatives"]
            else []
        ),
    output:
        model=directory(LAYOUT.tuned_embedder_dir("{dataset}", "{embedder}", "{lr}")),
        info=LAYOUT.train_record(
            LAYOUT.tuned_embedder_dir("{dataset}", "{embedder}", "{lr}")
        ),
    log:
        log_path("train_embedder", "{dataset}", "{embedder}", "lr{lr}"),
    benchmark:
        bench_path("train_embedder", "{dataset}", "{embedder}", "lr{lr}")
    conda:
        CONDA_ENV
    threads: job_threads("train_embedder")
    resources:
        gpu=gpus("train_embedder"),
    params:
        embedder=lambda wc: config["embedders"][wc.embedder],
        settings=ragtune_rule_settings.triggers(config, "train_embedder"),
        seed=training_seed,
    script:
        "../workflow/scripts/train_embedder.py"


rule train_generator:
    input:
        questions=LAYOUT.qa_split("{dataset}", "train"),
        # Ft. Gen trains on what the *base* embedder retrieves, as in the paper (§2.2).
        retrieved=lambda wc: base_retrieval(
            wc.dataset, embedder_of(wc.pipeline), "train"
        ),
        store=lambda wc: store_manifest(embedder_of(wc.pipeline)),
        generator=lambda wc: base_generator(wc.pipeline)[0],
    output:
        adapter=directory(LAYOUT.adapter_dir("{dataset}", "{pipeline}", "{lr}")),
        info=LAYOUT.train_record(LAYOUT.adapter_dir("{dataset}", "{pipeline}", "{lr}")),
    log:
        log_path("train_generator", "{dataset}", "{pipeline}", "lr{lr}"),
    benchmark:
        bench_path("train_generator", "{dataset}", "{pipeline}", "lr{lr}")
    conda:
        CONDA_ENV
    threads: job_threads("train_generator")
    resources:
        gpu=gpus("train_generator"),
    params:
        generator=lambda wc: base_generator(wc.pipeline)[1],
        settings=ragtune_rule_settings.triggers(config, "train_generator"),
        seed=training_seed,
    script:
        "../workflow/scripts/train_generator.py"


# RAG-Sequence / RAG-Token: RAG-Seq. and RAG-Tok. train both models; 2-Phase is two such runs,
# phase 1 (two_phase_1/g<lr>) with the embedder frozen, phase 2 (two_phase/e<lr>_g<phase-1
# winner>) with phase 1's generator frozen.
rule train_joint:
    input:
        questions=LAYOUT.qa_split("{dataset}", "train"),
        # for the validation loss (training.joint.validation_loss_every)
        val_questions=LAYOUT.qa_split("{dataset}", "validation"),
        index=lambda wc: index_file(embedder_of(wc.pipeline)),
        store=lambda wc: store_manifest(embedder_of(wc.pipeline)),
        generator=joint_generator_inputs,
    output:
        model=directory(LAYOUT.joint_model_dir(*RUN_WILDCARDS)),
        info=LAYOUT.train_record(LAYOUT.joint_model_dir(*RUN_WILDCARDS)),
    log:
        log_path("train_joint", "{dataset}", "{pipeline}", "{strategy}", "{lrs}"),
    benchmark:
        bench_path("train_joint", "{dataset}", "{pipeline}", "{strategy}", "{lrs}")
    wildcard_constraints:
        strategy="|".join(ragtune_plan.JOINT),
    conda:
        CONDA_ENV
    threads: job_threads("train_joint")
    resources:
        gpu=gpus("train_joint"),
    params:
        embedder=lambda wc: config["embedders"][embedder_of(wc.pipeline)],
        generator=joint_generator_spec,
        loss=joint_loss,
        lrs=joint_lrs,
        settings=ragtune_rule_settings.triggers(config, "train_joint"),
        seed=training_seed,
    script:
        "../workflow/scripts/train_joint.py"
