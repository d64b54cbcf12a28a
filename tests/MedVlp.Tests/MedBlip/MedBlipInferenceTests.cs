using MedVlp.Architectures.MedBlip;
using MedVlp.Modeling;
using MedVlp.Synthetic;
using MedVlp.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Tests.MedBlip;

/// <summary>MedBLIP's texts, the synthetic EHR records, and inference through a saved package.</summary>
public sealed class MedBlipInferenceTests
{
    [Fact]
    public void RecordsSplitIntoContextAndReleasedAnswersAndAnswersMapToLabels()
    {
        Assert.Equal(("Age: 70. MMSE: 21.", "Dementia"), MedBlipText.Split("Age: 70. MMSE: 21. The diagnosis is AD."));
        Assert.Equal("Not demented", MedBlipText.Split("x. The diagnosis is CN.").Answer);
        Assert.Equal("Not demented", MedBlipText.Split("x. The diagnosis is Nondemented.").Answer);
        Assert.Equal("mild cognitive impairment (MCI)", MedBlipText.Split("x. The diagnosis is MCI.").Answer);
        Assert.Null(MedBlipText.Split("No diagnosis here.").Answer);
        Assert.Equal("Age: 70. Question: What will this subject be diagnosed with? Answer: ", MedBlipText.Prompt("Age: 70."));
        Assert.Equal(CognitiveDiagnosis.MildCognitiveImpairment, MedBlipText.ParseDiagnosis(" mild cognitive impairment (MCI)"));
        Assert.Equal(CognitiveDiagnosis.CognitivelyNormal, MedBlipText.ParseDiagnosis("Not demented"));
        Assert.Equal(CognitiveDiagnosis.Dementia, MedBlipText.ParseDiagnosis("Dementia"));
        Assert.Null(MedBlipText.ParseDiagnosis("Answer: Question"));
        foreach (var d in CognitiveDiagnosisNames.All)
        {
            Assert.Equal(d, MedBlipText.ParseDiagnosis(MedBlipText.Answer(d)));
        }
    }

    [Fact]
    public void LanguageTokensAreGpt2sAndBatchesMaskPadding()
    {
        var text = new MedBlipText(TestModels.Tokenizer);
        Assert.Equal([15496, 995], text.EncodePrompt("Hello world")); // GPT-2's ids of "Hello world"
        Assert.Equal(MedBlipText.EndOfText, text.EncodeAnswer("Dementia")[^1]);
        Assert.Equal("Dementia", text.Decode(text.EncodeAnswer("Dementia").Select(i => (long)i)));
        using var scope = NewDisposeScope();
        var batch = text.Batch(zeros([2L, 1, 4, 4, 4]), ["Age: 70. The diagnosis is AD.", "Age: 81. Sex: female. Education: 12 years. MMSE: 29. The diagnosis is CN."]);
        Assert.Equal(2, batch.PromptIds.shape[0]);
        Assert.True(batch.PromptMask[0].sum().item<long>() < batch.PromptMask[1].sum().item<long>());
        Assert.Equal(MedBlipText.EndOfText, batch.PromptIds[0, -1].item<long>()); // right padding
        Assert.Equal(0, batch.PromptMask[0, -1].item<long>());
        Assert.Throws<ArgumentException>(() => text.Batch(zeros([1L, 1, 4, 4, 4]), ["No label."]));
    }

    [Fact]
    public void SyntheticCasesCarryMedBlipStyleEhrText()
    {
        var cases = SyntheticBrainDataset.Generate(30, 5);
        Assert.All(cases, c =>
        {
            Assert.Matches(@"^Age: \d+\. Sex: (female|male)\. Education: \d+ years\. (MMSE: \d+\. )?APOE4: (carrier|non-carrier)\. The diagnosis is ", c.Ehr);
            Assert.EndsWith($"The diagnosis is {c.Diagnosis.LabelName()}.", c.Ehr, StringComparison.Ordinal);
            Assert.DoesNotContain("ventric", c.Ehr, StringComparison.OrdinalIgnoreCase);
        });
        Assert.Contains(cases, c => !c.Ehr.Contains("MMSE", StringComparison.Ordinal));
        Assert.Equal(cases[7].Ehr, SyntheticBrainDataset.GenerateCase(5, 7).Ehr);
        Assert.Equal(cases[7].Report, SyntheticBrainDataset.GenerateCase(5, 7).Report);
    }

    [Fact]
    public void APackageAnswersAsTheModelDidAndInferenceLeavesNoTensor()
    {
        var volumes = SyntheticBrainDataset.Generate(3, 11).Select(c => c.Volume).ToArray();
        using var folder = TestData.NewTempFolder();
        IReadOnlyList<string> before;
        IReadOnlyList<CognitiveDiagnosis> contrastiveBefore;
        using (var model = VisionLanguageModel.Create(MedBlipConfig.Tiny(TestModels.Tokenizer.VocabularySize), TestModels.Tokenizer, TestModels.Preprocessing(32), seed: 3))
        {
            Assert.Equal(["lm_model"], model.Module.FrozenComponents);
            var assistant = new MedBlipAssistant(model);
            assistant.Ask([volumes[0]], ["What is shown?"], maxTokens: 2); // warm-up
            var live = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
            before = assistant.Ask(volumes, [.. volumes.Select(_ => "What will this subject be diagnosed with?")], ["Age: 70.", null, "MMSE: 20."], maxTokens: 4);
            contrastiveBefore = assistant.DiagnoseContrastive(volumes);
            Assert.Equal(live, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
            model.Save(folder.Path);
        }

        using var loaded = VisionLanguageModel.Load(folder.Path);
        Assert.Equal(MedBlipConfig.ArchitectureName, loaded.Architecture);
        Assert.Equal(["lm_model"], loaded.Module.FrozenComponents);
        Assert.DoesNotContain(loaded.Module.TrainableParameters(), p => p.Name.StartsWith("visual_encoder.blocks.", StringComparison.Ordinal));
        var again = new MedBlipAssistant(loaded);
        Assert.Equal(before, again.Ask(volumes, [.. volumes.Select(_ => "What will this subject be diagnosed with?")], ["Age: 70.", null, "MMSE: 20."], maxTokens: 4));
        Assert.Equal(contrastiveBefore, again.DiagnoseContrastive(volumes));
        Assert.Equal(3, again.DiagnoseGenerative(volumes, maxTokens: 3).Count);
        Assert.Throws<ArgumentException>(() => new MedBlipAssistant(TestModels.TinyModel()));
    }
}
