/* unet_flops.c — analytic FLOP count of a UNet2DConditionModel call, walking the
 * same block structure as unet.c (for benchmarks' GFLOP/s). */
#include "extract/unet.h"

static double conv(double cin, double cout, double k, double hw_out)
{
    return 2.0 * cin * cout * k * k * hw_out;
}

static double resnet(double cin, double cout, double temb, double hw)
{
    double f = conv(cin, cout, 3, hw) + conv(cout, cout, 3, hw) + 2.0 * temb * cout;
    if (cin != cout)
        f += conv(cin, cout, 1, hw);
    return f;
}

/* Transformer2D with n blocks on C channels and N tokens, context L x D. */
static double transformer(double C, double N, double L, double D, double n)
{
    double proj = 2 * (2.0 * C * C * N);
    double self = 4 * (2.0 * C * C * N) + 2 * (2.0 * N * N * C);
    double cross = 2 * (2.0 * C * C * N) + 2 * (2.0 * D * C * L) + 2 * (2.0 * N * L * C);
    double ff = 2.0 * C * 8 * C * N + 2.0 * 4 * C * C * N;
    return proj + n * (self + cross + ff);
}

static int64_t down_size(int64_t s, int pad)
{
    return pad == 0 ? (s + 1 - 3) / 2 + 1 : (s + 2 * pad - 3) / 2 + 1;
}

double dhf_unet_flops(const dhf_unet_config *c, int64_t B, int64_t h, int64_t w,
                      int64_t ctx_len)
{
    int nb = c->n_blocks, L = c->layers_per_block;
    double c0 = c->block_out_channels[0], temb = 4 * c0, D = c->cross_attention_dim;
    double f = 2.0 * c0 * temb + 2.0 * temb * temb;   /* time embedding (per sample) */
    int64_t hs[DHF_UNET_MAX_BLOCKS + 1], ws[DHF_UNET_MAX_BLOCKS + 1];
    hs[0] = h;
    ws[0] = w;
    for (int i = 1; i < nb; i++) {
        hs[i] = down_size(hs[i - 1], c->downsample_padding);
        ws[i] = down_size(ws[i - 1], c->downsample_padding);
    }
    f += conv(c->in_channels, c0, c->conv_in_kernel, (double)(h * w));
    double out = c0;
    for (int i = 0; i < nb; i++) {
        double in = out, hw = (double)(hs[i] * ws[i]);
        out = c->block_out_channels[i];
        for (int j = 0; j < L; j++) {
            f += resnet(j == 0 ? in : out, out, temb, hw);
            if (c->down_cross_attn[i])
                f += transformer(out, hw, ctx_len, D, c->transformer_layers[i]);
        }
        if (i < nb - 1)
            f += conv(out, out, 3, (double)(hs[i + 1] * ws[i + 1]));
    }
    double cm = c->block_out_channels[nb - 1], hwm = (double)(hs[nb - 1] * ws[nb - 1]);
    f += 2 * resnet(cm, cm, temb, hwm) +
         transformer(cm, hwm, ctx_len, D, c->transformer_layers[nb - 1]);
    out = cm;
    for (int i = 0; i < nb; i++) {
        int lvl = nb - 1 - i;
        double prev = out, hw = (double)(hs[lvl] * ws[lvl]);
        out = c->block_out_channels[lvl];
        double in = c->block_out_channels[nb - 1 - (i + 1 < nb ? i + 1 : nb - 1)];
        for (int j = 0; j < L + 1; j++) {
            double skip = j == L ? in : out, rin = j == 0 ? prev : out;
            f += resnet(rin + skip, out, temb, hw);
            if (c->up_cross_attn[i])
                f += transformer(out, hw, ctx_len, D, c->transformer_layers[lvl]);
        }
        if (i < nb - 1)
            f += conv(out, out, 3, (double)(hs[lvl - 1] * ws[lvl - 1]));
    }
    f += conv(c0, c->out_channels, c->conv_out_kernel, (double)(h * w));
    return f * (double)B;
}
