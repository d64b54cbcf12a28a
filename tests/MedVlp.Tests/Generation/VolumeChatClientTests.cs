using MedVlp.Architectures.MedBlip;
using MedVlp.Inference.Generation;
using MedVlp.Synthetic;
using MedVlp.Testing;
using MedVlp.Volumes.IO;
using MedVlp.Volumes.IO.Nifti;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;

namespace MedVlp.Tests.Generation;

/// <summary>MedVlp's <see cref="IChatClient"/>: volumes in messages, options mapping, streaming, and Microsoft.Extensions.AI middleware over it.</summary>
[Collection(nameof(TorchRandomState))]
public sealed class VolumeChatClientTests
{
    private const string Question = "What will this subject be diagnosed with?";

    [Fact]
    public async Task AVolumeInAMessageIsAnsweredAsVisualQuestionAnsweringAnswersIt()
    {
        using var model = VisionLanguageModel.Create(MedBlipConfig.Tiny(TestModels.Tokenizer.VocabularySize), TestModels.Tokenizer, TestModels.Preprocessing(32), seed: 5);
        var vqa = new VisualQuestionAnswering(model);
        using var folder = TestData.NewTempFolder();
        var volume = SyntheticBrainDataset.Generate(1, 8)[0].Volume;
        var path = folder.File("subject.nii.gz");
        NiftiWriter.Write(volume, path);
        var expected = vqa.Answer(VolumeReader.Read(path), Question, null, new GenerationOptions { MaxNewTokens = 5 }).Text;
        using var client = new VolumeChatClient(vqa, "medblip-tiny");

        var bytes = new ChatMessage(ChatRole.User, [new TextContent(Question), new DataContent(await File.ReadAllBytesAsync(path), "application/gzip")]);
        var response = await client.GetResponseAsync([bytes], new ChatOptions { MaxOutputTokens = 5, Temperature = 0 });
        Assert.Equal(expected, response.Text);
        Assert.Equal("medblip-tiny", response.ModelId);
        Assert.NotNull(response.FinishReason);

        var reference = new ChatMessage(ChatRole.User, [new TextContent(Question), new UriContent(new Uri(path), "application/x-nifti")]);
        var streamed = new List<ChatResponseUpdate>();
        await foreach (var update in client.GetStreamingResponseAsync([reference], new ChatOptions { MaxOutputTokens = 5 }))
        {
            streamed.Add(update);
        }

        Assert.Equal(expected, string.Concat(streamed.Select(u => u.Text)).Trim());
        Assert.Equal(ChatFinishReason.Stop, streamed[^1].FinishReason);

        // A follow-up without an attachment asks about the conversation's volume.
        var followUp = await client.GetResponseAsync([reference, new ChatMessage(ChatRole.Assistant, expected), new ChatMessage(ChatRole.User, Question)], new ChatOptions { MaxOutputTokens = 5 });
        Assert.Equal(expected, followUp.Text);

        Assert.Contains("application/x-nifti", (await Assert.ThrowsAsync<ArgumentException>(() => client.GetResponseAsync([new ChatMessage(ChatRole.User, [new TextContent(Question), new DataContent(new byte[] { 1, 2, 3, 4 }, "image/png")])]))).Message, StringComparison.Ordinal);
        Assert.Contains("No user message carries a volume", (await Assert.ThrowsAsync<ArgumentException>(() => client.GetResponseAsync([new ChatMessage(ChatRole.User, Question)]))).Message, StringComparison.Ordinal);
        Assert.Same(vqa, client.GetService<VisualQuestionAnswering>());
        Assert.Equal("medblip-tiny", client.GetService<ChatClientMetadata>()!.DefaultModelId);
    }

    [Fact]
    public void ChatOptionsMapOntoGenerationOptions()
    {
        using var model = VisionLanguageModel.Create(MedBlipConfig.Tiny(TestModels.Tokenizer.VocabularySize), TestModels.Tokenizer, TestModels.Preprocessing(32), seed: 5);
        var client = new VolumeChatClient(new VisualQuestionAnswering(model), defaultOptions: new GenerationOptions { MaxNewTokens = 20 });
        var sampled = client.ToGenerationOptions(new ChatOptions { Temperature = 0.7f, TopP = 0.9f, TopK = 40, Seed = 12, MaxOutputTokens = 9, StopSequences = ["."] });
        Assert.True(sampled.DoSample);
        Assert.Equal(0.7, sampled.Temperature, 1e-6);
        Assert.Equal(0.9, sampled.TopP, 1e-6);
        Assert.Equal(40, sampled.TopK);
        Assert.Equal(12, sampled.Seed);
        Assert.Equal(9, sampled.MaxNewTokens);
        Assert.Equal(["."], sampled.StopSequences);
        var greedy = client.ToGenerationOptions(new ChatOptions { Temperature = 0, TopP = 0.5f });
        Assert.False(greedy.DoSample);
        Assert.Equal(20, greedy.MaxNewTokens);
        var beams = client.ToGenerationOptions(new ChatOptions { AdditionalProperties = new() { ["num_beams"] = 4, ["length_penalty"] = 0.5 } });
        Assert.Equal(4, beams.NumBeams);
        Assert.Equal(0.5, beams.LengthPenalty);
        Assert.Throws<ArgumentException>(() => client.ToGenerationOptions(new ChatOptions { TopP = 1.5f }));
    }

    [Fact]
    public async Task ChatMiddlewareAppliesUnchanged()
    {
        using var model = VisionLanguageModel.Create(MedBlipConfig.Tiny(TestModels.Tokenizer.VocabularySize), TestModels.Tokenizer, TestModels.Preprocessing(32), seed: 5);
        var vqa = new VisualQuestionAnswering(model);
        using var folder = TestData.NewTempFolder();
        var path = folder.File("subject.nii");
        NiftiWriter.Write(SyntheticBrainDataset.Generate(1, 9)[0].Volume, path);
        var logs = new List<string>();
        using var loggerFactory = new ListLoggerFactory(logs);
        var calls = 0;
        using var inner = new VolumeChatClient(vqa, "medblip-tiny");
        using var client = new ChatClientBuilder(inner)
            .UseLogging(loggerFactory)
            .Use(async (messages, options, next, cancellationToken) =>
            {
                calls++;
                await next(messages, options, cancellationToken);
            })
            .Build();
        var message = new ChatMessage(ChatRole.User, [new TextContent(Question), new UriContent(new Uri(path), "application/x-nifti")]);
        var direct = await inner.GetResponseAsync([message], new ChatOptions { MaxOutputTokens = 4 });
        var through = await client.GetResponseAsync([message], new ChatOptions { MaxOutputTokens = 4 });
        Assert.Equal(direct.Text, through.Text);
        Assert.Equal(1, calls);
        Assert.Contains(logs, l => l.Contains("GetResponseAsync", StringComparison.Ordinal));
        var streamed = new List<string>();
        await foreach (var update in client.GetStreamingResponseAsync([message], new ChatOptions { MaxOutputTokens = 4 }))
        {
            streamed.Add(update.Text);
        }

        Assert.Equal(direct.Text, string.Concat(streamed).Trim());
        Assert.Equal(2, calls);
        Assert.Contains(logs, l => l.Contains("GetStreamingResponseAsync", StringComparison.Ordinal));
    }

    private sealed class ListLoggerFactory(List<string> lines) : ILoggerFactory
    {
        public ILogger CreateLogger(string categoryName) => new ListLogger(lines);

        public void AddProvider(ILoggerProvider provider)
        {
        }

        public void Dispose()
        {
        }

        private sealed class ListLogger(List<string> lines) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                lock (lines)
                {
                    lines.Add(formatter(state, exception));
                }
            }
        }
    }
}
