using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MedVlp.Training.Optimizers;

/// <summary>
/// TorchSharp's <see cref="TorchSharp.Modules.AdamW"/> (PyTorch's single-tensor AdamW: decoupled weight decay, bias-corrected moments) with a
/// cheaper step that gives the same bits: no-decay parameters skip the multiplication by exactly 1, the denominator is
/// built in place (one temporary instead of two), and second moments below the smallest normal float are raised to it
/// before the square root.
/// </summary>
/// <remarks>
/// <para>
/// libtorch's CPU square root runs through MKL's vector math library, whose path for zeros and subnormal numbers is about
/// four times slower than for normal numbers; an embedding table whose rows never see a token keeps zero second moments
/// for the whole run, so a plain <c>sqrt</c> spends most of the optimizer's time there. For v below
/// the smallest normal float (1.2e-38) the exact denominator is <c>sqrt(v) / sqrt(1 - beta2^t) + eps</c> with
/// <c>sqrt(v) &lt;= 1.1e-19</c>; whenever <c>1.1e-19 / sqrt(1 - beta2^t) &lt;= eps * 2^-25</c> (eps 1e-6 or 1e-8 with
/// beta2 0.98 or 0.999: from the first step) that term is below half a unit in the last place of <c>eps</c>, so both
/// round to <c>eps</c> and the raised value changes nothing. Steps where the condition does not hold take the plain
/// square root; AMSGrad and <c>maximize</c> fall back to TorchSharp's own step.
/// </para>
/// <para>The state (step, <c>exp_avg</c>, <c>exp_avg_sq</c>) is TorchSharp's, so <c>save_state_dict</c> /
/// <c>load_state_dict</c> read and write the same bytes as <see cref="TorchSharp.Modules.AdamW"/>: TorchSharp writes the class
/// name (<c>AdamW</c>) first and checks it on loading, hence the same name in this namespace.</para>
/// </remarks>
public sealed class AdamW : TorchSharp.Modules.AdamW
{
    /// <summary>2^-126, the smallest normal single-precision number.</summary>
    private const float SmallestNormalFloat = 1.17549435E-38f;

    /// <summary>2^-25: half a unit in the last place of a float32 x is more than x times this.</summary>
    private const double HalfUlpFactor = 2.9802322387695312E-08;

    /// <summary>Creates the optimizer over <paramref name="groups"/> (each may carry its own options).</summary>
    public AdamW(IEnumerable<ParamGroup> groups, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, double weightDecay = 0)
        : base(groups, lr, beta1, beta2, eps, weightDecay)
    {
    }

    /// <inheritdoc/>
    public override Tensor step(Func<Tensor>? closure = null)
    {
        foreach (var group in ParamGroups)
        {
            if (group is not ParamGroup { Options: Options options } || options.amsgrad == true || options.maximize == true)
            {
                return base.step(closure);
            }
        }

        return _step<ParamGroup>(
            group =>
            {
                var options = (Options)group.Options;
                var beta1 = options.beta1!.Value;
                var beta2 = options.beta2!.Value;
                var weightDecay = options.weight_decay!.Value;
                var eps = options.eps!.Value;
                var lr = options.LearningRate!.Value;
                foreach (var param in group.Parameters)
                {
                    var grad = param.grad;
                    if (grad is null)
                    {
                        continue;
                    }

                    var state = (State)_state[param.Handle];
                    state.step += 1;
                    var decay = 1 - (lr * weightDecay);
                    if (decay != 1)
                    {
                        param.mul_(decay);
                    }

                    var biasCorrection1 = 1 - Math.Pow(beta1, state.step);
                    var biasCorrection2 = 1 - Math.Pow(beta2, state.step);
                    state.exp_avg.mul_(beta1).add_(grad, alpha: 1 - beta1);
                    state.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value: 1 - beta2);
                    // Half an ulp of a float32 eps is more than eps * 2^-25: below that, raising v to the smallest normal float is invisible.
                    var raise = Math.Sqrt(SmallestNormalFloat) / Math.Sqrt(biasCorrection2) <= eps * HalfUlpFactor;
                    using var denominator = raise ? state.exp_avg_sq.clamp_min(SmallestNormalFloat).sqrt_() : state.exp_avg_sq.sqrt();
                    denominator.div_(Math.Sqrt(biasCorrection2)).add_(eps);
                    param.addcdiv_(state.exp_avg, denominator, value: -lr / biasCorrection1);
                }
            },
            closure);
    }
}
