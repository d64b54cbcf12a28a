namespace MedVlp.Modeling;

/// <summary>A model whose text encoder is a BERT that a pretrained one loads into (M-FLAG's <c>lm_model</c>, COLIPRI's
/// <c>text_encoder</c>): what <see cref="Training.RecipeArchitecture.LoadTextModel"/> needs.</summary>
internal interface IBertTextEncoderModel
{
    /// <summary>The text encoder.</summary>
    BertModel TextEncoder { get; }

    /// <summary>Its component name (the state-dict prefix, and the name <see cref="CompositeModel.Freeze"/> takes).</summary>
    string TextEncoderComponent { get; }
}
