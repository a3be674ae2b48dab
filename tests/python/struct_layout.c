/* struct_layout.c - prints the C layout of every struct the Python package
 * mirrors with ctypes, one line each: "STRUCT SIZE" then "STRUCT.FIELD
 * OFFSET SIZE"; test_structs.py compares them with the mirrors. */
#include <chargan.h>
#include <stddef.h>
#include <stdio.h>

#define STRUCT(t) printf("%s %zu\n", #t, sizeof(t))
#define FIELD(t, f) printf("%s.%s %zu %zu\n", #t, #f, offsetof(t, f), sizeof(((t *)0)->f))

int main(void)
{
    STRUCT(chargan_tokenizer_options);
    FIELD(chargan_tokenizer_options, struct_size);
    FIELD(chargan_tokenizer_options, max_vocab);
    FIELD(chargan_tokenizer_options, lowercase);
    FIELD(chargan_tokenizer_options, fold_crlf);
    FIELD(chargan_tokenizer_options, utf8_policy);

    STRUCT(chargan_model_config);
    FIELD(chargan_model_config, struct_size);
    FIELD(chargan_model_config, kind);
    FIELD(chargan_model_config, vocab_size);
    FIELD(chargan_model_config, embed_dim);
    FIELD(chargan_model_config, hidden_dim);
    FIELD(chargan_model_config, num_layers);
    FIELD(chargan_model_config, noise_dim);
    FIELD(chargan_model_config, start_id);
    FIELD(chargan_model_config, forget_bias);
    FIELD(chargan_model_config, recurrent_dropout);
    FIELD(chargan_model_config, init_scale);
    FIELD(chargan_model_config, seed);

    STRUCT(chargan_sample_options);
    FIELD(chargan_sample_options, struct_size);
    FIELD(chargan_sample_options, n_streams);
    FIELD(chargan_sample_options, length);
    FIELD(chargan_sample_options, temperature);
    FIELD(chargan_sample_options, top_k);
    FIELD(chargan_sample_options, top_p);
    FIELD(chargan_sample_options, seed);
    FIELD(chargan_sample_options, allow_reserved);
    FIELD(chargan_sample_options, threads);

    STRUCT(chargan_optimizer_config);
    FIELD(chargan_optimizer_config, struct_size);
    FIELD(chargan_optimizer_config, kind);
    FIELD(chargan_optimizer_config, lr);
    FIELD(chargan_optimizer_config, beta1);
    FIELD(chargan_optimizer_config, beta2);
    FIELD(chargan_optimizer_config, eps);
    FIELD(chargan_optimizer_config, weight_decay);
    FIELD(chargan_optimizer_config, momentum);
    FIELD(chargan_optimizer_config, rho);
    FIELD(chargan_optimizer_config, clip_norm);

    STRUCT(chargan_trainer_config);
    FIELD(chargan_trainer_config, struct_size);
    FIELD(chargan_trainer_config, batch);
    FIELD(chargan_trainer_config, seq_len);
    FIELD(chargan_trainer_config, val_fraction);
    FIELD(chargan_trainer_config, seed);
    FIELD(chargan_trainer_config, threads);
    FIELD(chargan_trainer_config, report_every);
    FIELD(chargan_trainer_config, val_every);
    FIELD(chargan_trainer_config, estimator);
    FIELD(chargan_trainer_config, d_steps);
    FIELD(chargan_trainer_config, gamma);
    FIELD(chargan_trainer_config, baseline_decay);
    FIELD(chargan_trainer_config, rollouts);
    FIELD(chargan_trainer_config, mle_weight);
    FIELD(chargan_trainer_config, beta_max);
    FIELD(chargan_trainer_config, anneal);
    FIELD(chargan_trainer_config, anneal_steps);
    FIELD(chargan_trainer_config, gan_loss);
    FIELD(chargan_trainer_config, beta_start);
    FIELD(chargan_trainer_config, gumbel_feed);

    STRUCT(chargan_progress);
    FIELD(chargan_progress, struct_size);
    FIELD(chargan_progress, phase);
    FIELD(chargan_progress, step);
    FIELD(chargan_progress, total);
    FIELD(chargan_progress, global_step);
    FIELD(chargan_progress, loss);
    FIELD(chargan_progress, d_loss);
    FIELD(chargan_progress, d_accuracy);
    FIELD(chargan_progress, val_nll);
    FIELD(chargan_progress, val_bpc);
    FIELD(chargan_progress, tokens_per_s);
    FIELD(chargan_progress, elapsed_s);
    return 0;
}
